"""The clinical side: facts, assessments, rules, cards and the CDS services; never imports service
or Flask."""
