"""Getting the patient record for one call: prefetch templates, prefetch reading, the FHIR client
and the SSRF guard."""
