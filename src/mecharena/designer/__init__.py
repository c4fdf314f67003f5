"""The referee environment: a designer picks mechanism rules against hidden, adapting populations."""
