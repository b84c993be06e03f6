"""The feature catalog: the IR as JSON, fingerprints, the catalog file, column lineage, plan/apply."""
