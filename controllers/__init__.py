"""Controllers: one job each (store, shift, replace, refine, reweight, blend), pure torch."""
