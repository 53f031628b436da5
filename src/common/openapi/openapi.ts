import { ApiExtension, DECORATORS, type OpenAPIObject } from '@nestjs/swagger';
import type { SchemaObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import type { RequestBodyObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';

/**
 * The validation pipe refuses unknown body fields, so every request body schema is closed
 * (`additionalProperties: false`); @nestjs/swagger has no decorator for that.
 */
export function closeRequestBodies(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const operation of [item.post, item.put, item.patch]) {
      const schema = (operation?.requestBody as RequestBodyObject | undefined)?.content[
        'application/json'
      ]?.schema;
      if (!schema || !('$ref' in schema)) continue;
      const name = schema.$ref.slice('#/components/schemas/'.length);
      Object.assign(document.components?.schemas?.[name] ?? {}, { additionalProperties: false });
    }
  }
  return document;
}

/**
 * `null`, for `oneOf: [{ $ref }, NULL_SCHEMA]`: OpenAPI 3.0 has no null type, and `nullable` next
 * to an `allOf` of a `$ref` (what `nullable: true` with a class type gives) does not admit null.
 * The CLI plugin gives a `T | null` property exactly that, so such a property also carries
 * `@ApiHideProperty()`: the plugin leaves it alone, and at run time the decorator does nothing.
 */
export const NULL_SCHEMA: SchemaObject = { type: 'object', nullable: true, enum: [null] };

/**
 * Lists a DTO's properties in the document in declaration order. @nestjs/swagger lists them in
 * the order it first hears of them: those with a decorator when the class is defined, those only
 * the CLI plugin documents when the document is built. A class where a property without a
 * decorator comes before one with a decorator needs this. The order is read from an instance:
 * class fields are defined on it in declaration order.
 */
export function ApiDeclarationOrder(): ClassDecorator {
  return (target) => {
    const dto = target as unknown as new () => object;
    const prototype = dto.prototype as object;
    const key = DECORATORS.API_MODEL_PROPERTIES_ARRAY;
    const known = (Reflect.getMetadata(key, prototype) as string[] | undefined) ?? [];
    const declared = Object.keys(new dto()).map((name) => `:${name}`);
    Reflect.defineMetadata(key, [...new Set([...declared, ...known])], prototype);
  };
}

const REQUEST_BODY = 'x-request-body';

/**
 * Documents a request body with its own schema per media type (`@ApiBody` with `@ApiConsumes`
 * gives every media type the same schema). Recorded as an extension, put in place by
 * `applyRequestBodies` once the document is built.
 */
export function ApiRequestBody(body: RequestBodyObject): MethodDecorator {
  return ApiExtension(REQUEST_BODY, body);
}

export function applyRequestBodies(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const operation of [item.post, item.put, item.patch]) {
      if (!operation || !Object.hasOwn(operation, REQUEST_BODY)) continue;
      operation.requestBody = Reflect.get(operation, REQUEST_BODY) as RequestBodyObject;
      Reflect.deleteProperty(operation, REQUEST_BODY);
    }
  }
  return document;
}
