"""The ``tideflow`` command line."""
