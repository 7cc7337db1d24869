//! Names of the plain enums on the command line, in checkpoints and in messages: one macro
//! gives each its `FromStr` and `Display`, so a name is written once.

/// `named_enum!(Type, "what", ["name" => Type::Variant, ...])` implements `FromStr` (an unknown
/// name is an [`Error::Argument`](crate::Error::Argument) listing the known ones) and `Display`.
#[macro_export]
#[doc(hidden)]
macro_rules! named_enum {
    ($ty:ty, $what:literal, [$($name:literal => $variant:expr),+ $(,)?]) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($name => Ok($variant),)+
                    _ => Err($crate::Error::arg($what, concat!("one of:" $(, " ", $name)+), s)),
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let name = match self {
                    $(v if *v == $variant => $name,)+
                    _ => unreachable!(),
                };
                f.write_str(name)
            }
        }
    };
}
