DROP TABLE federation_states;
