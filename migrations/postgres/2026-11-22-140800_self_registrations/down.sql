DROP TABLE self_registrations;
