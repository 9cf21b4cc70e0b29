"""One module per benchmark scenario; each `run(root, quick)` returns its figures, target and target_met."""
