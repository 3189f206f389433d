"""CEL expressions and {{ }} templates, compiled once and cached."""
