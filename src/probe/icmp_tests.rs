use super::*;

#[test]
fn socket_errors_keep_the_os_words() {
    let wrapped = std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "Permission denied creating ICMP socket. On Linux, you may need to:\n1. ...\nOriginal error: Permission denied (os error 13)",
    );
    assert_eq!(os_error(&wrapped), "Permission denied (os error 13)");
    let plain = std::io::Error::from_raw_os_error(1);
    assert_eq!(os_error(&plain), "Operation not permitted (os error 1)");
}

#[test]
fn any_concurrency_makes_a_semaphore() {
    for (asked, permits_made) in [
        (0, 1),
        (1, 1),
        (1000, 1000),
        (MAX_CONCURRENCY, MAX_CONCURRENCY),
        (MAX_CONCURRENCY + 1, MAX_CONCURRENCY),
        (usize::MAX >> 3, MAX_CONCURRENCY),
        (usize::MAX, MAX_CONCURRENCY),
    ] {
        assert_eq!(permits(asked), permits_made, "{asked}");
        let semaphore = Semaphore::new(permits(asked));
        assert_eq!(semaphore.available_permits(), permits_made);
    }
}
