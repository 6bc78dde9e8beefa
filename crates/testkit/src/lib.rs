//! liege-testkit (to be written).
