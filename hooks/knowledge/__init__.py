"""The versioned clinical knowledge: model, loader, schema and cross-reference checks, errors (re-
exported here)."""

from __future__ import annotations

from hooks.facts.groups import FACT_GROUPS
from hooks.knowledge.errors import KnowledgeError, path_text
from hooks.knowledge.loader import (
    DEFAULT_KNOWLEDGE_FILE,
    build_knowledge,
    load_knowledge,
    validate_knowledge,
)
from hooks.knowledge.model import (
    BUNDLED_KNOWLEDGE,
    ConditionValueSet,
    Formulation,
    Knowledge,
    MedicationClass,
    Product,
    Source,
    normalise_icd,
)
from hooks.knowledge.references import ORDER_SCOPES
from hooks.knowledge.schema import SCHEMA_FILE, KnowledgeSchema, knowledge_schema

__all__ = [
    "BUNDLED_KNOWLEDGE",
    "DEFAULT_KNOWLEDGE_FILE",
    "FACT_GROUPS",
    "ORDER_SCOPES",
    "SCHEMA_FILE",
    "ConditionValueSet",
    "Formulation",
    "Knowledge",
    "KnowledgeError",
    "KnowledgeSchema",
    "MedicationClass",
    "Product",
    "Source",
    "build_knowledge",
    "knowledge_schema",
    "load_knowledge",
    "normalise_icd",
    "path_text",
    "validate_knowledge",
]
