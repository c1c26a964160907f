"""Tests of the agreement and diagnostic-accuracy statistics (annotations.statistics)."""
