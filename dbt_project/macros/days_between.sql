{#
  Fractional days from start_ts to end_ts (both timestamp without time zone),
  as double precision, exact to the microsecond: 2026-10-01 00:00 to
  2026-10-02 12:00 is 1.5. dbt.datediff counts calendar boundaries in whole
  units, so it cannot give a fractional window length.
#}
{% macro days_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('days_between', 'promoflow')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__days_between(start_ts, end_ts) -%}
    cast(extract(epoch from ({{ end_ts }} - {{ start_ts }})) / 86400.0 as double precision)
{%- endmacro %}

{% macro duckdb__days_between(start_ts, end_ts) -%}
    cast((epoch_us({{ end_ts }}) - epoch_us({{ start_ts }})) / 86400000000.0 as double precision)
{%- endmacro %}
