//! The tier rule of DESIGN.md §2, checked on the real workspace.

#[test]
fn workspace_respects_the_tier_rule() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = xtask::tiers::check(&meta);
    assert!(errors.is_empty(), "tier rule broken:\n{}", errors.join("\n"));
}

#[test]
fn the_check_catches_an_upward_edge() {
    let meta = serde_json::json!({"packages": [
        {"name": "wharf-store", "dependencies": [{"name": "wharf-api", "kind": null}]},
        {"name": "wharf-api", "dependencies": []},
        {"name": "wharf-runtime", "dependencies": [{"name": "wharf-snapshot", "kind": null}]},
        {"name": "wharf-snapshot", "dependencies": []},
        {"name": "mystery", "dependencies": []},
    ]});
    let errors = xtask::tiers::check(&meta);
    assert!(errors.iter().any(|e| e.contains("wharf-store (tier 1) depends on wharf-api (tier 4)")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("wharf-runtime must not depend on wharf-snapshot")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("mystery is not in the tier table")), "{errors:?}");
}
