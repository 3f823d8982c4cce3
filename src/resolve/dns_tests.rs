use super::*;

#[tokio::test]
async fn special_use_names_never_reach_the_system_resolver() {
    // With no explicit name server, a .test name is answered locally: NotAsked, at once.
    let Ok(dns) = DnsResolver::new(DnsSettings::default()) else {
        return; // no system resolver configuration on this machine: nothing to ask anyway
    };
    assert_eq!(
        dns.lookup("ipsec-1.pops.popsel.test").await,
        Answer::NotAsked
    );
}
