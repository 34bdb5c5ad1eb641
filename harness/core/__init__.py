"""What a run is made of: settings and their layering (settings, config, variants, the suites), the
registries and plugin loading (registry, plugins, protocols), metrics, and errors. Imports nothing else
of the harness."""
