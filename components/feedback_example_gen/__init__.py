"""Feedback-history ExampleGen: reads Taobao-style logs in either layout of SPEC §3."""
