//! `popsel demo`: what popsel sees of an Atmos account, with no account needed. Starts the
//! emulator in-process on loopback with the sample catalogue, provisions a sample location's
//! two tunnels through the real client, and prints the PoPs, the tunnels and their status.

use secrecy::SecretString;

use super::Table;
use super::api::pop_table;
use crate::atmos::{Client, ClientConfig, TunnelSpec};
use crate::sim::{Sim, SimOptions};

/// A throwaway secret for the in-process emulator; it is never printed.
fn random_secret() -> SecretString {
    SecretString::from(
        std::iter::repeat_with(fastrand::alphanumeric)
            .take(32)
            .collect::<String>(),
    )
}

pub async fn run() -> anyhow::Result<()> {
    let token = random_secret();
    let sim = Sim::start(SimOptions::local(token.clone())).await?;
    println!("Atmos API emulator on {} (sample catalogue)\n", sim.url());
    let client = Client::new(ClientConfig::new(sim.url(), token))?;

    let pops = client.ipsec_pops().await?;
    println!("IPsec PoPs (GET /api/v1/pops/ipsec):\n{}", pop_table(&pops));

    let location_id = "d88fc23a-59a1-476a-a62e-a51ff3543fe7";
    for (name, auth) in [
        ("Chicago IPSec1", "chicago-primary@branch.example"),
        ("Chicago IPSec2", "chicago-secondary@branch.example"),
    ] {
        client
            .create_tunnel(&TunnelSpec {
                name: name.into(),
                authentication_id: auth.into(),
                psk: random_secret(),
                location_id: location_id.into(),
            })
            .await?;
    }
    let mut table = Table::new(&["ID", "NAME", "AUTHENTICATION ID", "LOCATION ID", "STATUS"]);
    for t in client.list_tunnels().await? {
        let status = client.tunnel_status(&t.id).await?;
        table.row(vec![
            t.id,
            t.name,
            t.authentication_id,
            t.location_id,
            status.status.to_string(),
        ]);
    }
    println!("Tunnels (GET /api/v1/tunnels):\n{}", table.render());
    sim.stop().await;
    Ok(())
}
