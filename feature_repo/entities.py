"""Feast entities: the keys features are looked up by."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shop customer (raw user_id: stays inside the warehouse and feature store).",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item (raw.items.item_id).",
)
