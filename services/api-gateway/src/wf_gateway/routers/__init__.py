from ..pathids import register

register()  # before any router module compiles its paths
