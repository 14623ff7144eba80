// tauri-build reads tauri.conf.json beside Cargo.toml, checks the capabilities and writes the
// access-control list the app embeds. Each app command (command_list.rs) gets its own
// allow-/deny- permission.
include!("command_list.rs");

macro_rules! command_names {
    ($($module:ident :: $command:ident),* $(,)?) => {
        &[$(stringify!($command)),*]
    };
}

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/command_list.rs");
    let manifest = tauri_build::AppManifest::new().commands(app_commands!(command_names));
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("tauri-build failed: check tauri.conf.json and the capabilities in it");
}
