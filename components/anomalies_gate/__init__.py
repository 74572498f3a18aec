"""Stops the pipeline before Transform when ExampleValidator found anomalies."""
