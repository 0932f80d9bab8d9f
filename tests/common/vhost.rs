//! A RabbitMQ vhost of a test's own, made and deleted through the management API, so tests
//! that switch tracing on or declare fixed names do not disturb each other.

use lapin::{Channel, Connection, ConnectionProperties};
use rabbitscope::remote::{Endpoint, Management};

pub fn url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")
}

/// A vhost for one test, deleted when the test ends (passed or not).
pub struct TestVhost {
    pub name: String,
    pub management: Management,
}

impl TestVhost {
    pub async fn new(what: &str) -> TestVhost {
        let name = super::unique(what);
        let management = Management::new(&Endpoint::new(&url(&name), None).unwrap()).unwrap();
        management.create_vhost(&name).await.unwrap();
        TestVhost { name, management }
    }

    pub fn url(&self) -> String {
        url(&self.name)
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(&self.url(), None).unwrap()
    }

    pub async fn channel(&self) -> (Connection, Channel) {
        let connection = Connection::connect(&self.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let endpoint = self.endpoint();
        let name = self.name.clone();
        // A runtime of its own: the test's may be shutting down.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let m = Management::new(&endpoint).unwrap();
                let _ = m.delete_vhost(&name).await;
            });
        })
        .join()
        .unwrap();
    }
}
