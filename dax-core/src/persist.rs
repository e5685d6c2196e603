//! Cache write-back and persistent copies. Placeholder: being written.
