"""Builders shared by the tests."""

VALUE = 1
