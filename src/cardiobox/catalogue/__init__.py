"""The metadata catalogue: HealthDCAT-AP descriptions of every site's data, harvested at the hub.

A site builds an aggregate-only description of its store (:mod:`cardiobox.catalogue.build`),
publishes it as RDF (:mod:`cardiobox.catalogue.rdf`), validated against SHACL shapes
(:mod:`cardiobox.catalogue.validate`); the hub harvests and versions the descriptions
(:mod:`cardiobox.catalogue.hub`) and researchers search them. See docs/catalogue.md.
"""
