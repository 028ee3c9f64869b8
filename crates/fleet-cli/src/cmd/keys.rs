//! `fleet audit pubkey [--all]` and `fleet audit rotate-key`: the keys
//! attestations and checkpoints are signed with.

use crate::context::App;
use anyhow::Result;

/// `fleet audit pubkey`: the current key (created if this installation has
/// none yet); with `all`, also every retired key the log lists, one per
/// line, each followed on stderr by its status.
pub async fn pubkey(app: &App, all: bool) -> Result<()> {
    let key = app.engine.signing_key()?;
    let v = key.verifier();
    println!("{}", v.vkey());
    eprintln!(
        "key id {} (ed25519, current; the file is {})",
        v.key_id(),
        app.engine.settings().signing_key_file.display()
    );
    if all {
        let ring = app.engine.key_ring().await?;
        for k in ring.keys().iter().filter(|k| k.verifier != v) {
            println!("{}", k.verifier.vkey());
            eprintln!(
                "key id {} ({}; recorded at event {})",
                k.verifier.key_id(),
                k.status(),
                k.recorded_at
            );
        }
    }
    Ok(())
}

/// `fleet audit rotate-key`: a new key becomes current; the old one's
/// public key stays in the log, retired, so what it signed still verifies.
pub async fn rotate(app: &App) -> Result<()> {
    let r = app.engine.rotate_key().await?;
    println!("{}", r.current.vkey());
    eprintln!(
        "{}key {}+{} is current; key {}+{} was retired at event {} (it vouches only for events before that; its private key file was removed)",
        if r.resumed {
            "finished an interrupted rotation: "
        } else {
            ""
        },
        r.current.name(),
        r.current.key_id(),
        r.retired.name(),
        r.retired.key_id(),
        r.retired_at
    );
    Ok(())
}
