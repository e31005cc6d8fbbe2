"""Lightning wrappers and data modules for smlmnet's learned models."""
