use crate::harness::*;

#[test]
fn serves_hello_world_over_http_1_0_and_1_1() {
    let s = Server::start("basic:app");
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, World!\n");
    let r = s.request(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.0");
}
