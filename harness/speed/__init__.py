"""Speed, measured: timing regimes and their conditions (measure), calibration workloads (calibrate),
each model's size and speed on every backend (efficiency), and the machine (env)."""
