//! The plugins shipped with nonstop, embedded in the binary: written into
//! a missing plugins folder, so a fresh install has them wherever it runs.

use std::path::Path;

/// The plugins shipped with nonstop, written into a missing plugins folder.
pub const SHIPPED_PLUGINS: [(&str, &str); 4] = [
    ("tour.rhai", include_str!("../../plugins/tour.rhai")),
    ("harmonic.rhai", include_str!("../../plugins/harmonic.rhai")),
    ("energy_arc.rhai", include_str!("../../plugins/energy_arc.rhai")),
    ("README.md", include_str!("../../plugins/README.md")),
];

/// Creates `dir` with the shipped plugins if it does not exist (a fresh
/// install run from anywhere). An existing folder is the curator's: left alone.
pub fn ensure_plugins(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in SHIPPED_PLUGINS {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

