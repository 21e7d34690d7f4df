{#
  Fails for every row where the column is negative (nulls pass; pair with
  not_null where a value is required).
#}
{% test not_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
