"""Settings: the YAML file, its schema, environment and command-line overrides, validated."""
