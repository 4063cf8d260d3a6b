//! Container images: pull, load, store and unpack (being written).
