//! liege-wsgi (to be written).
