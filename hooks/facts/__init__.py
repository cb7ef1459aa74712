"""The patient's record as typed facts: the model, the readers that fill it from FHIR JSON, the fact
groups."""
