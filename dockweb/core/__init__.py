"""Engine client per host, jobs, the events bridge, reconcile and the audit log."""
