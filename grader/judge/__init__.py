"""The judge: a trusted pytest process that runs checks against a sandboxed solution."""
