//! Which RabbitMQ release the broker behaves as, and RabbitMQ's deprecated features with their
//! `deprecated_features.permit.<feature>` switches.
//!
//! Only the rules that changed between 3.13 and 4.3 and touch what the broker models live
//! here; the rest of the broker behaves as every release does. Each rule names the
//! rabbitmq-server file (and tag) it is read from.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use amq_protocol::types::FieldTable;

use super::error::AmqpError;
use super::queue::{QueueLimits, QueueType};

/// The classic queue argument 4.3 no longer reads.
const QUEUE_MODE: &str = "x-queue-mode";

/// A RabbitMQ release series the broker can behave as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    V3_13,
    V4_0,
    V4_1,
    V4_2,
    V4_3,
}

impl Release {
    pub const ALL: [Release; 5] = [
        Release::V3_13,
        Release::V4_0,
        Release::V4_1,
        Release::V4_2,
        Release::V4_3,
    ];

    /// The newest release on which oslo.messaging's default settings still run: 4.3 denies
    /// the transient non-exclusive queues they declare.
    pub const DEFAULT: Release = Release::V4_2;

    /// `4.2`, as RabbitMQ names the series.
    pub fn name(self) -> &'static str {
        match self {
            Release::V3_13 => "3.13",
            Release::V4_0 => "4.0",
            Release::V4_1 => "4.1",
            Release::V4_2 => "4.2",
            Release::V4_3 => "4.3",
        }
    }

    /// Quorum queues have a delivery limit even when none is given: 20 (release-notes/4.0.1.md,
    /// "Quorum Queues Now Have a Default Redelivery Limit"; `?DEFAULT_DELIVERY_LIMIT` in
    /// deps/rabbit/src/rabbit_quorum_queue.erl, v4.0.0 on).
    pub fn default_delivery_limit(self) -> Option<i64> {
        (self >= Release::V4_0).then_some(20)
    }

    /// Only a failed delivery (the consumer's channel gone) counts towards a quorum queue's
    /// delivery limit and its `x-delivery-count`; a client's requeue (nack, reject, recover)
    /// does not (release-notes/4.3.0.md, "Quorum queues now allow unlimited explicit message
    /// returns"; `return_one/8` and `maybe_return_all/6` in deps/rabbit/src/rabbit_fifo.erl,
    /// v4.3.0).
    pub fn counts_only_failed_deliveries(self) -> bool {
        self >= Release::V4_3
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The valid names, for errors: `3.13, 4.0, 4.1, 4.2 or 4.3`.
fn listed<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

impl FromStr for Release {
    type Err = String;

    /// `4.3`, or a patch release such as `4.0.5` (its series).
    fn from_str(text: &str) -> Result<Release, String> {
        let mut parts = text.trim().splitn(3, '.');
        let series = match (parts.next(), parts.next(), parts.next()) {
            (Some(major), Some(minor), patch)
                if patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                format!("{major}.{minor}")
            }
            _ => String::new(),
        };
        Release::ALL
            .into_iter()
            .find(|r| r.name() == series)
            .ok_or_else(|| {
                format!(
                    "unknown RabbitMQ release '{text}': rabbitscope behaves as {}",
                    listed(&Release::ALL, Release::name)
                )
            })
    }
}

/// A RabbitMQ deprecated feature that touches what the broker models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeprecatedFeature {
    /// Non-durable, non-exclusive queues (deps/rabbit/src/rabbit_amqqueue.erl).
    TransientNonexclQueues,
    /// basic.qos with global=true (deps/rabbit/src/rabbit_channel.erl).
    GlobalQos,
    /// `x-queue-master-locator` on classic queues (deps/rabbit/src/rabbit_queue_location.erl,
    /// since 4.0).
    QueueMasterLocator,
}

/// How far a feature's deprecation went in a release (`deprecation_phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    PermittedByDefault,
    DeniedByDefault,
}

impl DeprecatedFeature {
    pub const ALL: [DeprecatedFeature; 3] = [
        DeprecatedFeature::TransientNonexclQueues,
        DeprecatedFeature::GlobalQos,
        DeprecatedFeature::QueueMasterLocator,
    ];

    /// RabbitMQ's name, as `deprecated_features.permit.<name>` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DeprecatedFeature::TransientNonexclQueues => "transient_nonexcl_queues",
            DeprecatedFeature::GlobalQos => "global_qos",
            DeprecatedFeature::QueueMasterLocator => "queue_master_locator",
        }
    }

    /// The feature's `deprecation_phase` in `release`, None where the release does not know
    /// it. Read from each tag's `-rabbit_deprecated_feature` declarations (v3.13.7, v4.0.9,
    /// v4.1.8, v4.2.9, v4.3.5); release-notes/4.3.0.md lists the three moved to
    /// `denied_by_default` in 4.3.0.
    pub fn phase(self, release: Release) -> Option<Phase> {
        if self == DeprecatedFeature::QueueMasterLocator && release < Release::V4_0 {
            return None;
        }
        Some(if release >= Release::V4_3 {
            Phase::DeniedByDefault
        } else {
            Phase::PermittedByDefault
        })
    }

    /// What RabbitMQ says when the feature is used while denied: the `when_denied` message
    /// `generate_warnings1/3` writes for the phase (deps/rabbit/src/rabbit_deprecated_features.erl,
    /// v4.3.5; none of these three features gives its own).
    pub fn denied_text(self, phase: Phase) -> String {
        let name = self.name();
        let permit = format!("    \"deprecated_features.permit.{name} = true\"");
        match phase {
            Phase::DeniedByDefault => format!(
                "Feature `{name}` is deprecated.\n\
                 By default, this feature is not permitted anymore.\n\
                 The feature will be removed from a future major RabbitMQ version, regardless \
                 of the configuration; actual version to be determined.\n\
                 To continue using this feature when it is not permitted by default, set the \
                 following parameter in your configuration:\n{permit}"
            ),
            Phase::PermittedByDefault => format!(
                "Feature `{name}` is deprecated.\n\
                 Its use is not permitted per the configuration (overriding the default, which \
                 is permitted):\n    \"deprecated_features.permit.{name} = false\"\n\
                 Its use will not be permitted by default in a future minor RabbitMQ version and \
                 the feature will be removed from a future major RabbitMQ version; actual \
                 versions to be determined.\n\
                 To continue using this feature when it is not permitted by default, set the \
                 following parameter in your configuration:\n{permit}"
            ),
        }
    }
}

impl fmt::Display for DeprecatedFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeprecatedFeature {
    type Err = String;

    fn from_str(text: &str) -> Result<DeprecatedFeature, String> {
        DeprecatedFeature::ALL
            .into_iter()
            .find(|f| f.name() == text.trim())
            .ok_or_else(|| {
                format!(
                    "unknown deprecated feature '{text}': rabbitscope models {}",
                    listed(&DeprecatedFeature::ALL, DeprecatedFeature::name)
                )
            })
    }
}

/// The release the broker behaves as, and the deprecated features permitted or denied against
/// that release's defaults (`deprecated_features.permit.<feature> = true|false`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    pub release: Release,
    /// Only the switches that differ from the release's default, in the order given.
    overrides: Vec<(DeprecatedFeature, bool)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::of(Release::DEFAULT)
    }
}

impl Behaviour {
    /// The release with its defaults.
    pub fn of(release: Release) -> Behaviour {
        Behaviour {
            release,
            overrides: Vec::new(),
        }
    }

    /// Sets `deprecated_features.permit.<feature>`; refused for a feature the release does not
    /// have.
    pub fn permit(mut self, feature: DeprecatedFeature, permitted: bool) -> Result<Self, String> {
        let phase = feature.phase(self.release).ok_or_else(|| {
            format!(
                "RabbitMQ {} has no deprecated feature '{feature}'",
                self.release
            )
        })?;
        self.overrides.retain(|(f, _)| *f != feature);
        if permitted != (phase == Phase::PermittedByDefault) {
            self.overrides.push((feature, permitted));
        }
        Ok(self)
    }

    /// Whether the feature may be used.
    pub fn is_permitted(&self, feature: DeprecatedFeature) -> bool {
        match self.overrides.iter().find(|(f, _)| *f == feature) {
            Some((_, permitted)) => *permitted,
            None => feature.phase(self.release) != Some(Phase::DeniedByDefault),
        }
    }

    /// The switches that differ from the release's defaults.
    pub fn overrides(&self) -> &[(DeprecatedFeature, bool)] {
        &self.overrides
    }

    /// 541 INTERNAL_ERROR with RabbitMQ's warning, when the feature is denied.
    pub fn check(&self, feature: DeprecatedFeature) -> Result<(), AmqpError> {
        if self.is_permitted(feature) {
            return Ok(());
        }
        let phase = feature
            .phase(self.release)
            .unwrap_or(Phase::PermittedByDefault);
        Err(AmqpError::internal_error(feature.denied_text(phase)))
    }

    /// The rules RabbitMQ applies to a new queue after its arguments were checked and before
    /// its type's own checks (`declare/7` in deps/rabbit/src/rabbit_amqqueue.erl, v4.3.5):
    /// a non-durable queue must be exclusive unless `transient_nonexcl_queues` is permitted,
    /// whatever its type. Then a classic queue's `x-queue-master-locator` needs
    /// `queue_master_locator` (`validate_arguments/1` in rabbit_classic_queue.erl, v4.0.0 on).
    pub fn check_new_queue(
        &self,
        queue_type: QueueType,
        durable: bool,
        exclusive: bool,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        if !durable && !exclusive {
            self.check(DeprecatedFeature::TransientNonexclQueues)?;
        }
        if queue_type == QueueType::Classic
            && arguments.inner().contains_key("x-queue-master-locator")
            && DeprecatedFeature::QueueMasterLocator
                .phase(self.release)
                .is_some()
        {
            self.check(DeprecatedFeature::QueueMasterLocator)?;
        }
        Ok(())
    }

    /// The arguments RabbitMQ reads on a new queue: from 4.3 a classic queue's `x-queue-mode`
    /// is taken, whatever its value, and never read (commit a67de22527 "Remove x-queue-mode
    /// and restrict x-queue-version to 2": `check_queue_mode/2` is gone from
    /// deps/rabbit/src/rabbit_amqqueue.erl at v4.3.0, while rabbit_classic_queue.erl still
    /// lists the argument). release-notes/4.3.0.md says such a declare fails; the code does not.
    pub fn arguments_read<'a>(&self, arguments: &'a FieldTable) -> Cow<'a, FieldTable> {
        let classic = QueueType::of("", "", arguments).ok() == Some(QueueType::Classic);
        if self.release < Release::V4_3 || !classic || !arguments.inner().contains_key(QUEUE_MODE) {
            return Cow::Borrowed(arguments);
        }
        let mut read = FieldTable::default();
        for (key, value) in arguments
            .inner()
            .iter()
            .filter(|(k, _)| k.as_str() != QUEUE_MODE)
        {
            read.insert(key.clone(), value.clone());
        }
        Cow::Owned(read)
    }

    /// basic.qos global=true counts as global=false while `global_qos` is denied: no error,
    /// a per-consumer limit instead (`handle_method(#'basic.qos'{global = true ...})` in
    /// deps/rabbit/src/rabbit_channel.erl, v4.3.5).
    pub fn qos_global(&self, global: bool) -> bool {
        global && self.is_permitted(DeprecatedFeature::GlobalQos)
    }

    /// What the release changes in limits read from a queue's arguments: a quorum queue's
    /// delivery limit (see [`Behaviour::delivery_limit`]).
    pub fn apply_to(&self, limits: &mut QueueLimits) {
        if limits.queue_type == QueueType::Quorum {
            limits.delivery_limit = self.delivery_limit(limits.delivery_limit);
        }
    }

    /// A quorum queue's delivery limit: the one given, else the release's default; a negative
    /// one means none from 4.0 on (`init/1` in deps/rabbit/src/rabbit_fifo.erl, v4.0.0).
    pub fn delivery_limit(&self, given: Option<i64>) -> Option<i64> {
        match given {
            Some(n) if n < 0 && self.release >= Release::V4_0 => None,
            Some(n) => Some(n),
            None => self.release.default_delivery_limit(),
        }
    }

    /// `behaves as RabbitMQ 4.3 · permits transient_nonexcl_queues`, for the status line.
    pub fn summary(&self) -> String {
        let mut text = format!("behaves as RabbitMQ {}", self.release);
        for (feature, permitted) in &self.overrides {
            let verb = if *permitted { "permits" } else { "denies" };
            text.push_str(&format!(" · {verb} {feature}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::{Behaviour, DeprecatedFeature, Release};

    #[test]
    fn releases_parse_by_series_and_refuse_others_naming_the_valid_ones() {
        assert_eq!("4.3".parse(), Ok(Release::V4_3));
        assert_eq!("4.0.5".parse(), Ok(Release::V4_0));
        assert_eq!("3.13".parse(), Ok(Release::V3_13));
        for bad in ["3.12", "4", "4.2.", "5.0", "4.2.x", "latest", ""] {
            let error = bad.parse::<Release>().unwrap_err();
            assert!(
                error.contains("3.13, 4.0, 4.1, 4.2 or 4.3"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn only_4_3_denies_by_default_and_switches_override_both_ways() {
        use DeprecatedFeature::*;
        for release in Release::ALL {
            let defaults = Behaviour::of(release);
            assert_eq!(
                defaults.is_permitted(TransientNonexclQueues),
                release < Release::V4_3
            );
            assert_eq!(defaults.is_permitted(GlobalQos), release < Release::V4_3);
        }
        let permitted = Behaviour::of(Release::V4_3)
            .permit(TransientNonexclQueues, true)
            .unwrap();
        assert!(permitted.is_permitted(TransientNonexclQueues));
        assert!(!permitted.is_permitted(GlobalQos));
        let denied = Behaviour::of(Release::V3_13)
            .permit(GlobalQos, false)
            .unwrap();
        assert!(!denied.is_permitted(GlobalQos));
        assert!(Behaviour::of(Release::V3_13)
            .permit(QueueMasterLocator, false)
            .is_err());
        // Switching a feature to its default is no override.
        let same = Behaviour::of(Release::V4_2)
            .permit(GlobalQos, true)
            .unwrap();
        assert_eq!(same, Behaviour::of(Release::V4_2));
    }

    #[test]
    fn the_summary_names_the_release_and_what_differs_from_its_defaults() {
        let behaviour = Behaviour::of(Release::V4_3)
            .permit(DeprecatedFeature::TransientNonexclQueues, true)
            .unwrap();
        assert_eq!(
            behaviour.summary(),
            "behaves as RabbitMQ 4.3 · permits transient_nonexcl_queues"
        );
        assert_eq!(Behaviour::default().summary(), "behaves as RabbitMQ 4.2");
    }

    #[test]
    fn quorum_delivery_limits_default_to_20_from_4_0_and_negative_means_none() {
        let (old, new) = (Behaviour::of(Release::V3_13), Behaviour::of(Release::V4_0));
        assert_eq!(old.delivery_limit(None), None);
        assert_eq!(new.delivery_limit(None), Some(20));
        assert_eq!(new.delivery_limit(Some(-1)), None);
        assert_eq!(new.delivery_limit(Some(3)), Some(3));
    }
}
