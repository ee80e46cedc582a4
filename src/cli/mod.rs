//! The `kubectl incident` plugin's views, kept in the library so that what
//! responders read is tested like the rest of the product.

pub mod view;
