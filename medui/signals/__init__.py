"""Physiological signals: time series from devices worn or attached by patients (CGM, ...)."""
