"""Tests that run each example in examples/ for real, as its README says."""
