DROP TABLE signing_key_material;
