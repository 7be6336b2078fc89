"""Consent and purpose policy as code: the Rego bundle and the engines that evaluate it."""
