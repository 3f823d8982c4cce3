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
