//! Checks that keep the architecture honest.
//!
//! [`tiers`]: DESIGN.md §2 says a crate imports only crates of lower tiers. The table below is
//! that rule as data; `cargo test -p xtask` fails when a dependency breaks it or when a new
//! workspace crate is not in the table.

pub mod tiers {
    /// Tier of every workspace package. `None` = binaries and dev crates, which may use any.
    pub const TIERS: &[(&str, Option<u8>)] = &[
        ("wharf-types", Some(0)),
        ("wharf-dockerfile", Some(0)),
        ("wharf-store", Some(1)),
        ("wharf-snapshot", Some(2)),
        ("wharf-runtime", Some(2)),
        ("wharf-network", Some(2)),
        ("wharf-registry", Some(2)),
        ("wharf-image", Some(3)),
        ("wharf-build", Some(3)),
        ("wharf-api", Some(4)),
        ("wharf-daemon", Some(5)),
        ("wharf-compose", Some(5)),
        ("wharfd", None),
        ("wharf", None),
        ("wharf-shim", None),
        ("wharf-runtime-bin", None),
        ("wharf-init", None),
        ("wharf-registry-bin", None),
        ("wharf-testkit", None),
        ("wharf-e2e", None),
        ("xtask", None),
    ];

    /// Same-tier edges DESIGN.md allows: the Dockerfile parser classifies its errors with
    /// wharf-types' error kinds; the builder writes layers with wharf-image's content store and
    /// layer codecs.
    pub const ALLOWED_SAME_TIER: &[(&str, &str)] =
        &[("wharf-dockerfile", "wharf-types"), ("wharf-build", "wharf-image")];

    /// Pairs that must never depend on each other whatever their tiers (DESIGN.md §2).
    pub const FORBIDDEN: &[(&str, &str)] = &[("wharf-runtime", "wharf-snapshot"), ("wharf-compose", "wharf-daemon")];

    /// Checks `cargo metadata` JSON; returns every violation found.
    pub fn check(metadata: &serde_json::Value) -> Vec<String> {
        let tier = |name: &str| TIERS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        let mut errors = Vec::new();
        let workspace: Vec<&str> =
            metadata["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        for pkg in metadata["packages"].as_array().into_iter().flatten() {
            let name = pkg["name"].as_str().unwrap_or_default();
            let Some(my_tier) = tier(name) else {
                errors.push(format!("{name} is not in the tier table (xtask/src/lib.rs); add it as DESIGN.md §2 says"));
                continue;
            };
            for dep in pkg["dependencies"].as_array().into_iter().flatten() {
                let dep_name = dep["name"].as_str().unwrap_or_default();
                if !workspace.contains(&dep_name) {
                    continue;
                }
                let is_dev = dep["kind"].as_str() == Some("dev");
                if FORBIDDEN.contains(&(name, dep_name)) {
                    errors.push(format!("{name} must not depend on {dep_name} (DESIGN.md §2)"));
                }
                let (Some(mine), Some(Some(theirs))) = (my_tier, tier(dep_name)) else {
                    // Binaries/dev crates may use anything; a library may use dev crates only as dev-deps.
                    if my_tier.is_some() && tier(dep_name) == Some(None) && !is_dev {
                        errors.push(format!("{name} depends on {dep_name}, which is a binary or dev crate"));
                    }
                    continue;
                };
                let same_ok = ALLOWED_SAME_TIER.contains(&(name, dep_name));
                if theirs > mine || (theirs == mine && !same_ok) {
                    errors.push(format!(
                        "{name} (tier {mine}) depends on {dep_name} (tier {theirs}): only lower tiers are allowed"
                    ));
                }
            }
        }
        errors
    }
}
