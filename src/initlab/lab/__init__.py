"""The lab: data sets, model specs, trainers, experiments, claims and reports."""
