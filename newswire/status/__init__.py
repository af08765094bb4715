"""The operator's status page: lag, partners' health, dead letters, deliveries, kills, replays."""
