"""CEL expressions and {{ }} templates, compiled once and cached."""
from .cel import (
    VARIABLES,
    CompiledExpr,
    ExpressionError,
    compile_expr,
    evaluate,
    evaluate_bool,
    unwrap,
)
from .templates import (
    exact_template,
    find_templates,
    redact,
    referenced_secrets,
    render,
    secret_marker,
    substitute_secrets,
)

__all__ = [
    "VARIABLES",
    "CompiledExpr",
    "ExpressionError",
    "compile_expr",
    "evaluate",
    "evaluate_bool",
    "exact_template",
    "find_templates",
    "redact",
    "referenced_secrets",
    "render",
    "secret_marker",
    "substitute_secrets",
    "unwrap",
]
