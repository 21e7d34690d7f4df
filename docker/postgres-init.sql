-- The warehouse database promoflow writes to (dbt target "postgres", Feast offline store).
create user promoflow with password 'promoflow';
create database warehouse owner promoflow;
