use super::*;

/// `/proc/self/status` with the effective capability set `cap_eff`.
fn status(cap_eff: &str) -> String {
    format!(
        "Name:\tpopsel\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"
    )
}

#[test]
fn root_has_every_capability_the_lab_needs() {
    assert_eq!(
        missing_capabilities(&status("000001ffffffffff")),
        Ok(vec![])
    );
    // Exactly the three: SYS_ADMIN (21), NET_ADMIN (12), NET_RAW (13).
    let three = (1u64 << 21) | (1 << 12) | (1 << 13);
    assert_eq!(
        missing_capabilities(&status(&format!("{three:016x}"))),
        Ok(vec![])
    );
}

#[test]
fn a_process_without_them_is_told_which_are_missing() {
    assert_eq!(
        missing_capabilities(&status("0000000000000000")),
        Ok(vec!["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_RAW"])
    );
    // CAP_NET_ADMIN and CAP_NET_RAW alone cannot make a network namespace.
    let net = (1u64 << 12) | (1 << 13);
    assert_eq!(
        missing_capabilities(&status(&format!("{net:016x}"))),
        Ok(vec!["CAP_SYS_ADMIN"])
    );
    let message = Unavailable::Capabilities {
        missing: vec!["CAP_SYS_ADMIN"],
    }
    .to_string();
    assert!(
        message.ends_with("this process lacks CAP_SYS_ADMIN"),
        "{message}"
    );
}

#[test]
fn an_unreadable_status_is_an_error_not_a_guess() {
    assert!(missing_capabilities("Name:\tpopsel\n").is_err());
    assert!(missing_capabilities(&status("zz")).is_err());
}
