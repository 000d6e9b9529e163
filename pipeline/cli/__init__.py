"""The edge: arguments, environment, the console, signals and exit statuses."""
