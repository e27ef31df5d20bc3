//! `depot-gc reconcile` on a store whose listing lags its deletes.
//!
//! Garage deletes with a write quorum, so a delete succeeds while one of three nodes is down.
//! Once that node is back, listings it answers still name the deleted objects (it filters its
//! own stale copies before merging them with the other nodes' answers), until its anti-entropy
//! sync reaches it; every read says they are gone. Seen in the fault test: staged tails an
//! upload's commit deleted while a node was down came back in `reconcile` as dozens of
//! "orphans" that no removal could clear. Reconcile must count and remove only what a read
//! confirms, and say what it skipped.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use depot_testkit::garage;

use crate::world::{serial, World, BUCKET};

/// An S3 client on one Garage node, and a runtime to drive it from this synchronous test.
struct Node {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Node {
    fn new(endpoint: String) -> Node {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                garage::ACCESS_KEY,
                garage::SECRET_KEY,
                None,
                None,
                "garage",
            ))
            .force_path_style(true)
            .build();
        Node {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: Client::from_conf(config),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        let put = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(bytes.to_vec()));
        self.rt.block_on(put.send()).unwrap();
    }

    fn delete(&self, key: &str) {
        let delete = self.client.delete_object().bucket(BUCKET).key(key);
        self.rt.block_on(delete.send()).unwrap();
    }

    /// Whether a read finds `key`.
    fn exists(&self, key: &str) -> bool {
        let head = self.client.head_object().bucket(BUCKET).key(key);
        match self.rt.block_on(head.send()) {
            Ok(_) => true,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => false,
            Err(e) => panic!("HEAD {key}: {e:?}"),
        }
    }

    /// The keys under `prefix` a listing names, retried while the node (just started) has not
    /// reached its peers yet.
    fn list(&self, prefix: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let list = self.client.list_objects_v2().bucket(BUCKET).prefix(prefix);
            match self.rt.block_on(list.send()) {
                Ok(out) => {
                    return out
                        .contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned))
                        .collect()
                }
                Err(e) if std::time::Instant::now() > deadline => panic!("list: {e:?}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    }
}

#[test]
fn reconcile_counts_what_a_read_finds_not_what_a_lagging_listing_names() {
    let _serial = serial();
    let mut world = World::start(&["--no-auth", "--gc-interval", "0"], "");
    let (first, third) = (world.garage.endpoint(0), world.garage.endpoint(2));
    let node0 = Node::new(first.clone());
    // Two staged tails of upload sessions that never got a database row (a request cut off
    // before its session row was written): nothing refers to either.
    let gone = "registry/data/1a2b3c4d5e6-s2-0000000000000001-gone.tail-0";
    let left = "registry/data/1a2b3c4d5e6-s2-0000000000000002-left.tail-0";
    node0.put(gone, &[1; 3000]);
    node0.put(left, &[2; 5000]);

    // `gone` is deleted while node 2 is down, then node 2 comes back.
    world.garage.stop_node(2);
    node0.delete(gone);
    world.garage.start_node(2);
    let node2 = Node::new(third.clone());
    let listed = node2.list("registry/data/");
    assert!(
        listed.iter().any(|k| k == gone),
        "node 2 no longer lists an object deleted while it was down ({listed:?}): Garage \
         fixed its listing, and this test no longer exercises a lagging one"
    );
    assert!(!node2.exists(gone) && !node0.exists(gone));
    assert!(node2.exists(left));

    // Reconcile through node 2: one orphan (5000 bytes), and the deleted object named apart.
    let out = world.depot_gc_at(&third, &["--gc-grace", "0", "reconcile", "--dry-run"]);
    assert!(
        out.contains("would remove 1 orphans (5000 bytes)")
            && out.contains("; 1 listed but already gone")
            && out.contains(&format!("listed but gone {gone}"))
            && out.contains(&format!("orphan {left} (5000 bytes)")),
        "{out}"
    );
    assert!(node0.exists(left), "a dry run removed {left}");
    let out = world.depot_gc_at(&third, &["--gc-grace", "0", "reconcile"]);
    assert!(out.contains("removed 1 orphans (5000 bytes)"), "{out}");
    assert!(!node0.exists(left) && !node2.exists(left));
    // The next run has nothing to remove, whatever the listing still names.
    let out = world.depot_gc_at(&third, &["--gc-grace", "0", "reconcile", "--dry-run"]);
    assert!(out.contains("would remove 0 orphans (0 bytes)"), "{out}");
}
