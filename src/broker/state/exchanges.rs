//! exchange.declare and exchange.delete, and the bindings between exchanges and
//! destinations (queue.bind, exchange.bind and their unbinds).

use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::{equivalence, missing_queue, ChannelRef, State};
use crate::broker::args;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::exchange::{Binding, Destination, Exchange, ExchangeKind};
use crate::broker::journal::{BindingImage, StoreOp};
use crate::broker::permissions::{Access, Resource};
use crate::broker::vhost::Vhost;
use crate::events::{BindingInfo, EventKind};

/// exchange.declare arguments.
#[derive(Clone, Debug, Default)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: String,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// The destination of a bind or unbind.
pub enum Target<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

impl<'a> Target<'a> {
    /// The exchange (`to_exchange`) or queue called `name`, as a definitions file or a
    /// binding snapshot names a binding's destination.
    pub fn named(name: &'a str, to_exchange: bool) -> Self {
        if to_exchange {
            Target::Exchange(name)
        } else {
            Target::Queue(name)
        }
    }
}

/// queue.bind / exchange.bind arguments (and their unbinds'): `target` bound to exchange
/// `source`.
pub struct BindingSpec<'a> {
    pub source: &'a str,
    pub target: Target<'a>,
    pub routing_key: &'a str,
    pub arguments: FieldTable,
}

impl State {
    /// exchange.declare: checks the name, type and permissions, and an existing exchange
    /// for equivalence (406), then creates it.
    pub fn exchange_declare(&mut self, on: ChannelRef, spec: ExchangeSpec) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(on.connection)?;
        let vhost = self
            .vhosts
            .get_mut(&vhost_name)
            .expect("vhost of a connection exists");
        if spec.passive {
            vhost.exchange(&spec.name)?;
            return Ok(());
        }
        let Some(kind) = ExchangeKind::parse(&spec.kind) else {
            return Err(AmqpError::command_invalid(format!(
                "unknown exchange type '{}'",
                spec.kind
            )));
        };
        if spec.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.permit(
            on.connection,
            Access::Configure,
            Resource::Exchange(&spec.name),
        )?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if let Some(existing) = vhost.exchanges.get(spec.name.as_str()) {
            return equivalence::check_exchange(existing, &spec, kind, &vhost_name);
        }
        if spec.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        // A new exchange with an alternate exchange: its messages will be read from it and
        // written to the alternate.
        if let Some(alternate) = args::get_string(&spec.arguments, "alternate-exchange") {
            self.permit(on.connection, Access::Read, Resource::Exchange(&spec.name))?;
            self.permit(on.connection, Access::Write, Resource::Exchange(&alternate))?;
        }
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let exchange = Exchange::new(
            &spec.name,
            kind,
            spec.durable,
            spec.auto_delete,
            spec.internal,
            spec.arguments.clone(),
        );
        let name = exchange.name.clone();
        vhost.exchanges.insert(name.clone(), exchange);
        if spec.durable {
            self.record(|| StoreOp::ExchangeDeclared {
                vhost: vhost_name.clone(),
                name,
                kind: kind.as_str().into(),
                auto_delete: spec.auto_delete,
                internal: spec.internal,
                arguments: spec.arguments.clone(),
            });
        }
        self.emit_on(&vhost_name, on, || EventKind::ExchangeDeclared {
            name: spec.name.as_str().into(),
            kind: kind.as_str().into(),
            durable: spec.durable,
            auto_delete: spec.auto_delete,
            internal: spec.internal,
            arguments: args::pairs(&spec.arguments),
        });
        Ok(())
    }

    /// exchange.delete: a missing exchange is no error; `if_unused` refuses one with bindings
    /// from it.
    pub fn exchange_delete(
        &mut self,
        on: ChannelRef,
        name: &str,
        if_unused: bool,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(on.connection)?;
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        // Missing or not, no `amq.` exchange may be deleted (checked before permissions).
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{vhost_name}' not allowed"
            )));
        }
        self.permit(on.connection, Access::Configure, Resource::Exchange(name))?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let Some(exchange) = vhost.exchanges.get(name) else {
            // RabbitMQ answers delete-ok for a missing exchange.
            return Ok(());
        };
        // Only bindings from this exchange count; being a destination does not make it used.
        let used = exchange.router.binding_count() > 0;
        if if_unused && used {
            return Err(AmqpError::precondition_failed(format!(
                "exchange '{name}' in vhost '{vhost_name}' in use"
            )));
        }
        let removed_bindings = Self::bindings_touching_exchange(vhost, name);
        let also = vhost.delete_exchange(name);
        for info in removed_bindings {
            self.emit_on(&vhost_name, on, || EventKind::BindingDeleted(info));
        }
        for deleted in std::iter::once(Arc::from(name)).chain(also) {
            self.record(|| StoreOp::ExchangeDeleted {
                vhost: vhost_name.clone(),
                name: deleted.clone(),
            });
            self.emit_on(&vhost_name, on, || EventKind::ExchangeDeleted {
                name: deleted,
            });
        }
        Ok(())
    }

    fn bindings_touching_exchange(vhost: &Vhost, name: &str) -> Vec<Arc<BindingInfo>> {
        let mut out = Vec::new();
        if let Some(x) = vhost.exchanges.get(name) {
            out.extend(x.router.bindings().iter().map(|b| b.info(name)));
        }
        if let Some(list) = vhost.bindings_into_exchange.get(name) {
            out.extend(list.iter().map(|(s, b)| b.info(s)));
        }
        out
    }

    /// Checks a bind or unbind the way RabbitMQ does (no default exchange, both ends exist,
    /// exclusive queues only for their connection) and builds the binding.
    fn checked_binding(
        &mut self,
        on: ChannelRef,
        spec: BindingSpec<'_>,
    ) -> AmqpResult<(Arc<str>, Binding)> {
        let BindingSpec {
            source,
            target,
            routing_key,
            arguments,
        } = spec;
        let vhost_name = self.vhost_of(on.connection)?;
        let destination = match target {
            Target::Queue(q) => Destination::Queue(self.queue_name(on, q)?.into()),
            Target::Exchange(x) => Destination::Exchange(x.into()),
        };
        // Binding writes to the destination and reads from the source.
        let written = match &destination {
            Destination::Queue(q) => Resource::Queue(q),
            Destination::Exchange(x) => Resource::Exchange(x),
        };
        self.permit(on.connection, Access::Write, written)?;
        let default_exchange = matches!(&destination, Destination::Exchange(x) if x.is_empty());
        if source.is_empty() || default_exchange {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.permit(on.connection, Access::Read, Resource::Exchange(source))?;
        let vhost = &self.vhosts[&vhost_name];
        if vhost
            .exchanges
            .get(source)
            .is_some_and(|x| x.kind == ExchangeKind::Topic)
        {
            self.connections[&on.connection].grant.check_topic(
                Access::Read,
                source,
                routing_key,
            )?;
        }
        match &destination {
            Destination::Queue(q) => {
                let queue = vhost
                    .queues
                    .get(q)
                    .ok_or_else(|| missing_queue(&vhost_name, q))?;
                Self::check_owner(queue, on.connection, &vhost_name)?;
            }
            Destination::Exchange(x) => {
                vhost.exchange(x)?;
            }
        }
        vhost.exchange(source)?;
        let binding = Binding::new(destination, routing_key, arguments);
        Ok((vhost_name, binding))
    }

    /// queue.bind / exchange.bind. Binding again what exists changes nothing.
    pub fn bind(&mut self, on: ChannelRef, spec: BindingSpec<'_>) -> AmqpResult<()> {
        let source = spec.source;
        let (vhost_name, binding) = self.checked_binding(on, spec)?;
        let info = binding.info(source);
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let image = vhost
            .is_durable_binding(source, &binding)
            .then(|| BindingImage::of(source, &binding));
        if vhost.add_binding(source, binding) {
            if let Some(binding) = image {
                self.record(|| StoreOp::BindingAdded {
                    vhost: vhost_name.clone(),
                    binding,
                });
            }
            self.emit_on(&vhost_name, on, || EventKind::BindingCreated(info));
        }
        Ok(())
    }

    /// queue.unbind / exchange.unbind. Unbinding what is not bound is no error; an auto-delete
    /// source left without bindings goes.
    pub fn unbind(&mut self, on: ChannelRef, spec: BindingSpec<'_>) -> AmqpResult<()> {
        let source = spec.source;
        let (vhost_name, binding) = self.checked_binding(on, spec)?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if vhost.remove_binding(source, &binding) {
            let deleted = vhost.collect_auto_deleted(&[Arc::from(source)]);
            self.record(|| StoreOp::BindingRemoved {
                vhost: vhost_name.clone(),
                binding: BindingImage::of(source, &binding),
            });
            for name in &deleted {
                self.record(|| StoreOp::ExchangeDeleted {
                    vhost: vhost_name.clone(),
                    name: name.clone(),
                });
            }
            let info = binding.info(source);
            self.emit_on(&vhost_name, on, || EventKind::BindingDeleted(info));
            for name in deleted {
                self.emit_on(&vhost_name, on, || EventKind::ExchangeDeleted { name });
            }
        }
        Ok(())
    }
}
